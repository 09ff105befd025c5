"""Who a connection says it is: virtual hosting on servers, the client certificate on clients.

:class:`IdentitySettings` is a base of :class:`~aiotls.TLSContext` holding the settings
(state on the context, like the rest of it):

* servers: :attr:`~IdentitySettings.sni_callback` (the stdlib's shape),
  :attr:`~IdentitySettings.sni_contexts` (``{name or "*.wildcard": context}``) and
  :attr:`~IdentitySettings.sni_strict`, the ALPN rule
  :attr:`~IdentitySettings.alpn_mismatch_alert`;
* clients: :attr:`~IdentitySettings.client_certificate_chooser`, given a
  :class:`CertificateRequest`, answering with an :class:`Identity` (or ``None``).

:func:`context_chooser` is what a server connection runs once the ClientHello is read: the
mapping, then the callback, then the checks of the context it ends with.  The engine
(:mod:`aiotls._engine.sni`) switches the handshake to that context before answering.
"""

from __future__ import annotations

import logging
import os
import ssl
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509

from . import _crypto
from .errors import InternalError, PeerIncompatible, TLSConfigurationError, TLSError

if TYPE_CHECKING:
    from .connection import TLSConnection
    from .context import TLSContext

__all__ = ["CertificateRequest", "Identity", "IdentitySettings", "context_chooser"]

_logger = logging.getLogger("aiotls.sni")

#: The stdlib's callback shape: (ssl object, server name or None, the context it was set
#: on) -> None, or an alert number (ssl.ALERT_DESCRIPTION_*) to refuse the handshake.
SNICallback = Callable[[Any, "str | None", Any], "int | None"]


@dataclass(frozen=True, slots=True)
class Identity:
    """A certificate chain and its private key: one of a context's identities
    (:meth:`~aiotls.TLSContext.load_cert_chain`), or one made with :meth:`load`."""

    #: The chain, leaf first, as DER.
    chain: tuple[bytes, ...]
    #: The private key of the leaf (a ``cryptography`` private key object).
    key: Any
    #: The key's type: ``"RSA"``, ``"ECDSA-secp256r1"``, ``"ECDSA-secp384r1"``,
    #: ``"Ed25519"``...  A context keeps one identity per key type.
    key_type: str

    @classmethod
    def load(cls, certfile: str | os.PathLike[str], keyfile: str | os.PathLike[str] | None = None,
             password: str | bytes | None = None) -> Identity:
        """An identity from files, checked as :meth:`~aiotls.TLSContext.load_cert_chain`
        checks them."""
        from .context import TLSContext

        scratch = TLSContext(ssl.PROTOCOL_TLS_CLIENT)
        scratch.load_cert_chain(certfile, keyfile, password)
        return scratch._cert_identities[0]

    @property
    def certificate(self) -> x509.Certificate:
        """The leaf certificate."""
        return x509.load_der_x509_certificate(self.chain[0])

    def issuer_names(self) -> tuple[bytes, ...]:
        """The DER-encoded issuer name of every certificate of the chain (to compare with
        :attr:`CertificateRequest.ca_names`)."""
        return tuple(x509.load_der_x509_certificate(der).issuer.public_bytes()
                     for der in self.chain)

    def __repr__(self) -> str:
        return f"<aiotls.Identity {self.key_type} {self.certificate.subject.rfc4514_string()}>"


def key_type(key: Any) -> str:
    """The identity slot of a private key (RSA of any size is one type)."""
    described = _crypto.key_description(key)
    return "RSA" if described.startswith("RSA-") else described


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """What the client certificate chooser is given: the server's CertificateRequest."""

    #: The distinguished names (DER) of the CAs the server accepts; empty when it named
    #: none (then any chain may do).
    ca_names: tuple[bytes, ...]
    #: The signature schemes the server accepts, by IANA name (``"ecdsa_secp256r1_sha256"``,
    #: ``"rsa_pss_rsae_sha256"``, ``"ed25519"``...), in the server's order.
    signature_algorithms: tuple[str, ...]
    #: The server's name this client connects to (``server_hostname``), or ``None``.
    server_hostname: str | None
    #: ``"TLSv1.3"`` or ``"TLSv1.2"``.
    version: str
    #: The identities loaded on the client's context, preferred first.
    identities: tuple[Identity, ...]

    def issued_by_requested_ca(self, identity: Identity) -> bool:
        """True if a certificate of ``identity``'s chain was issued by one of
        :attr:`ca_names` (or the server named none)."""
        return not self.ca_names or any(n in self.ca_names for n in identity.issuer_names())


#: Client chooser shape: CertificateRequest -> Identity or None (send no certificate).
ClientCertificateChooser = Callable[[CertificateRequest], "Identity | None"]


def _normalise_name(name: Any) -> str:
    if not isinstance(name, str) or not name or name != name.strip():
        raise TLSConfigurationError(f"sni_contexts: {name!r} is not a host name",
                                    hint="use names like 'example.com' or '*.example.com'")
    name = name.rstrip(".").lower()
    labels = name.split(".")
    if "*" in name and (labels[0] != "*" or "*" in ".".join(labels[1:]) or len(labels) < 3):
        raise TLSConfigurationError(
            f"sni_contexts: {name!r} is not a supported wildcard",
            cause="a wildcard stands for exactly one whole left-most label, under at least "
            "two more labels (as in certificates)",
            hint="write '*.example.com' (it matches 'www.example.com', not 'example.com')")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise TLSConfigurationError(f"sni_contexts: {name!r} is not a valid IDNA name: "
                                        f"{exc}") from None
    return str(name)


def lookup(mapping: Mapping[str, Any], name: str | None) -> Any:
    """The context of ``name`` in a normalised mapping: the exact name, else the wildcard
    of its parent (``*.example.com`` for ``www.example.com``), else None."""
    if not name:
        return None
    name = name.rstrip(".").lower()
    found = mapping.get(name)
    if found is None and "." in name:
        found = mapping.get("*." + name.split(".", 1)[1])
    return found


def _check_server_context(ctx: Any, where: str) -> None:
    from .context import TLSContext

    if not isinstance(ctx, TLSContext):
        raise TLSConfigurationError(
            f"{where}: {type(ctx).__name__} is not an aiotls.TLSContext",
            hint="make each virtual host's context with aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)")
    if ctx.protocol != ssl.PROTOCOL_TLS_SERVER:
        raise TLSConfigurationError(f"{where}: a client context (PROTOCOL_TLS_CLIENT)",
                                    hint="use a context made with ssl.PROTOCOL_TLS_SERVER")
    if not ctx._chain_der:
        raise TLSConfigurationError(f"{where}: the context has no certificate",
                                    hint="call load_cert_chain() on it first")


class IdentitySettings(ssl.SSLContext):
    """The identity settings of :class:`~aiotls.TLSContext` (see the module)."""

    _sni_callback: SNICallback | None = None
    _sni_contexts: Mapping[str, Any] = types.MappingProxyType({})
    _sni_strict = False
    _alpn_mismatch_alert = True
    _client_chooser: ClientCertificateChooser | None = None
    _cert_identities: tuple[Identity, ...] = ()

    if TYPE_CHECKING:
        _protocol: ssl._SSLMethod

        def _changed(self) -> None: ...

    # --- servers: virtual hosting ----------------------------------------------------------

    @property  # type: ignore[override]
    def sni_callback(self) -> SNICallback | None:
        """Servers: called once the client's hello is read, before the server answers, as
        ``sni_callback(ssl_object, server_name, context)`` -- the stdlib's shape.

        ``server_name`` is the name the client sent (IDNA A-labels; ``None`` without one, or
        when it sent an IP address); ``context`` is this context.  ``ssl_object`` is what
        the connection is known by: the :class:`~aiotls.compat.TLSObject` of
        :meth:`wrap_bio` (asyncio's and uvloop's own TLS), the
        :class:`~aiotls.sync.TLSSocket` of :meth:`wrap_socket`, else the
        :class:`~aiotls.TLSConnection` (``aiotls.asyncio``, ``aiotls.anyio``).  Assigning
        its ``context`` switches the handshake to that server context: its certificates,
        verification (``verify_mode``, trusted CAs), ALPN protocols, versions, suites and
        ticket keys.  Return ``None`` to go on, or an alert number
        (``ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME``...) to refuse the handshake with it.
        If the callback raises, the handshake fails with ``internal_error`` (the exception,
        logged on ``aiotls.sni``, is the error's ``__cause__``).  :attr:`sni_contexts` is
        applied first, so the callback sees its choice as ``ssl_object.context``.
        """
        return self._sni_callback

    @sni_callback.setter
    def sni_callback(self, value: SNICallback | None) -> None:
        if value is not None and not callable(value):
            raise TypeError("not a callable object")
        if value is not None and self._protocol != ssl.PROTOCOL_TLS_SERVER:
            raise TLSConfigurationError("sni_callback is only used by server contexts",
                                        hint="set it on the ssl.PROTOCOL_TLS_SERVER context")
        self._sni_callback = value
        self._changed()

    def set_servername_callback(self, server_name_callback: SNICallback | None) -> None:
        """The stdlib's older name for :attr:`sni_callback` (same callback)."""
        self.sni_callback = server_name_callback

    @property
    def sni_contexts(self) -> Mapping[str, TLSContext]:
        """Servers: the context to use for each server name, a read-only mapping; assign a
        ``dict`` to change it (``{}``: none).

        Keys are host names (``"example.com"``) or wildcards standing for one left-most
        label (``"*.example.com"`` matches ``www.example.com``, not ``example.com`` nor
        ``a.b.example.com``); case and a final dot do not matter, and internationalised
        names may be given as text.  An exact name wins over a wildcard.  Values are server
        contexts with a certificate (this context itself may be one).  A client whose name
        is not there gets this context -- or, with :attr:`sni_strict`, an
        ``unrecognized_name`` alert.
        """
        return self._sni_contexts

    @sni_contexts.setter
    def sni_contexts(self, value: Mapping[str, TLSContext] | None) -> None:
        if self._protocol != ssl.PROTOCOL_TLS_SERVER and value:
            raise TLSConfigurationError("sni_contexts is only used by server contexts",
                                        hint="set it on the ssl.PROTOCOL_TLS_SERVER context")
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"sni_contexts must be a mapping, not {type(value).__name__}")
        normalised: dict[str, Any] = {}
        for name, ctx in (value or {}).items():
            key = _normalise_name(name)
            _check_server_context(ctx, f"sni_contexts[{name!r}]")
            normalised[key] = ctx
        self._sni_contexts = types.MappingProxyType(normalised)
        self._changed()

    @property
    def sni_strict(self) -> bool:
        """Servers: refuse a client whose server name is not in :attr:`sni_contexts` (and
        that :attr:`sni_callback`, if any, did not switch to another context) with a fatal
        ``unrecognized_name`` alert (RFC 6066 3) instead of serving it this context.  Off by
        default.  A client that sends no name (or an IP address) is still served this
        context."""
        return self._sni_strict

    @sni_strict.setter
    def sni_strict(self, value: bool) -> None:
        if not isinstance(value, bool | int):
            raise TLSConfigurationError(f"sni_strict must be True or False, not {value!r}")
        self._sni_strict = bool(value)
        self._changed()

    @property
    def alpn_mismatch_alert(self) -> bool:
        """Servers: when the client offers ALPN protocols and none is in
        :meth:`set_alpn_protocols`' list, refuse it with ``no_application_protocol`` (RFC
        7301 3.2: the default, ``True``).  ``False`` goes on without ALPN instead (the
        client then sees no protocol selected), for servers that serve such clients
        anyway.  Servers choose by their own preference order either way."""
        return self._alpn_mismatch_alert

    @alpn_mismatch_alert.setter
    def alpn_mismatch_alert(self, value: bool) -> None:
        if not isinstance(value, bool | int):
            raise TLSConfigurationError(
                f"alpn_mismatch_alert must be True or False, not {value!r}")
        self._alpn_mismatch_alert = bool(value)
        self._changed()

    # --- clients: which certificate to answer a CertificateRequest with ---------------------

    @property
    def client_certificate_chooser(self) -> ClientCertificateChooser | None:
        """Clients: called when the server asks for a certificate, with a
        :class:`~aiotls.CertificateRequest` (the CA names and signature algorithms the
        server accepts, and this context's identities); returns the
        :class:`~aiotls.Identity` to answer with -- one of ``request.identities``, or one
        made with :meth:`aiotls.Identity.load` -- or ``None`` to send no certificate.

        Without a chooser a client answers with the identity :meth:`load_cert_chain` loaded
        last.  A chooser that raises ends the handshake with ``internal_error``.  It is
        called in the handshake only: post-handshake authentication (TLS 1.3) is offered
        only by a client context with an identity loaded, and answers with it.
        """
        return self._client_chooser

    @client_certificate_chooser.setter
    def client_certificate_chooser(self, value: ClientCertificateChooser | None) -> None:
        if value is not None and not callable(value):
            raise TypeError("client_certificate_chooser must be callable or None")
        if value is not None and self._protocol != ssl.PROTOCOL_TLS_CLIENT:
            raise TLSConfigurationError(
                "client_certificate_chooser is only used by client contexts",
                hint="set it on the ssl.PROTOCOL_TLS_CLIENT context")
        self._client_chooser = value
        self._changed()


# --- the server's choice of context, once the ClientHello is read ----------------------------


def context_chooser(conn: TLSConnection) -> Callable[[str | None], TLSContext | None] | None:
    """What a server connection runs once the ClientHello is read (None: nothing to run):
    the context to switch to for the server name sent, or None to keep the connection's."""
    ctx = conn.context
    callback, mapping, strict = ctx._sni_callback, ctx._sni_contexts, ctx._sni_strict
    if callback is None and not mapping and not strict:
        return None

    def choose(name: str | None) -> TLSContext | None:
        chosen = lookup(mapping, name)
        with conn._switching_context():
            if chosen is not None:
                conn.context = chosen
            if callback is not None:
                owner = conn._sni_owner() if conn._sni_owner is not None else None
                try:
                    result = callback(owner if owner is not None else conn, name, ctx)
                except TLSError:
                    raise
                except Exception as exc:
                    _logger.exception("sni_callback %r raised for server name %r", callback,
                                      name)
                    raise InternalError(
                        f"the sni_callback raised {type(exc).__name__}: {exc} (sent alert "
                        "internal_error)", cause="a bug in the server's sni_callback",
                        hint="fix the callback; the traceback is logged on 'aiotls.sni'",
                        alert=80, code="sni-callback-failed") from exc
                if result is not None:
                    if isinstance(result, bool) or not isinstance(result, int) \
                            or not 0 <= result <= 255:
                        raise InternalError(
                            f"the sni_callback returned {result!r} (sent alert internal_error)",
                            cause="it must return None or an alert number",
                            hint="return None, or ssl.ALERT_DESCRIPTION_* to refuse",
                            alert=80, code="sni-callback-failed")
                    raise TLSError(
                        f"the sni_callback refused server name {name!r} with alert {result}",
                        cause="the server's callback chose to refuse this client",
                        hint="check the name the client sends (server_hostname)",
                        alert=result, code="sni-refused")
        switched = conn.context
        if switched is ctx and chosen is None and name is not None and strict:
            raise PeerIncompatible(
                f"the client asked for server name {name!r}, which this server does not serve "
                "(sent alert unrecognized_name)",
                cause="the name is not in the context's sni_contexts (nor chosen by its "
                "sni_callback) and sni_strict is on",
                hint="add the name to sni_contexts, or turn sni_strict off to serve the "
                "default certificate", alert=112, code="unrecognized-name")
        if switched is ctx:
            return None
        try:
            _check_server_context(switched, "the context chosen for server name "
                                            f"{name!r}")
        except TLSConfigurationError as exc:
            raise InternalError(exc.what + " (sent alert internal_error)",
                                cause=exc.hint and "the sni_callback or sni_contexts chose it",
                                hint=exc.hint, alert=80, code="sni-bad-context") from None
        return switched

    return choose
